/* The one error table: names and descriptions of the library's codes come
 * from ASYNCIO_ERROR_MAP; errno codes are named by the C library.  Every
 * string returned is static. */
#include "internal.h"

#include <string.h>

struct error_entry {
    int code;
    const char *name;
    const char *text;
};

static const struct error_entry library_errors[] = {
#define ENTRY(name, value, text) {value, "ASYNCIO_" #name, text},
    ASYNCIO_ERROR_MAP(ENTRY)
#undef ENTRY
};

static const struct error_entry *find_library_error(int err)
{
    for (size_t i = 0; i < sizeof(library_errors) / sizeof(library_errors[0]); i++)
        if (library_errors[i].code == err)
            return &library_errors[i];
    return NULL;
}

const char *asyncio_strerror(int err)
{
    const struct error_entry *e = find_library_error(err);
    if (e != NULL)
        return e->text;
    if (err == 0)
        return "success";
    if (err < 0 && err > -4096) {
#ifdef HAVE_STRERRORDESC_NP
        /* Unlike strerror(), a static string and thread-safe. */
        const char *s = strerrordesc_np(-err);
        if (s != NULL)
            return s;
#endif
    }
    return "unknown error";
}

const char *asyncio_err_name(int err)
{
    const struct error_entry *e = find_library_error(err);
    if (e != NULL)
        return e->name;
    if (err == 0)
        return "OK";
    if (err < 0 && err > -4096) {
#ifdef HAVE_STRERRORNAME_NP
        const char *s = strerrorname_np(-err);
        if (s != NULL)
            return s;
#endif
    }
    return "UNKNOWN";
}
