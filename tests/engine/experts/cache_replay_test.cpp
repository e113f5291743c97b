#include "engine/experts/cache_replay.h"
