/* Placeholder translation unit so tern_tools always has a source. */
#include "tools.h"
