#include "engine/experts/cache_policy.h"
