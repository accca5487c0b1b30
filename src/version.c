#include "internal.h"

const char *asyncio_version_string(void) { return ASYNCIO_VERSION_STRING; }

unsigned asyncio_version(void) { return ASYNCIO_VERSION_HEX; }
