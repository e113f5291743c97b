#include "engine/experts/routing_trace.h"
