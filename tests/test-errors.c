/* Error codes, their names and descriptions, and the version calls. */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct code {
    int value;
    const char *name;
    const char *text;
};

static const struct code library_codes[] = {
#define TU_CODE(name, value, text) {ASYNCIO_##name, "ASYNCIO_" #name, text},
    ASYNCIO_ERROR_MAP(TU_CODE)
#undef TU_CODE
};
#define N_LIBRARY_CODES (sizeof(library_codes) / sizeof(library_codes[0]))

START_TEST(err_name_names_every_library_code)
{
    for (size_t i = 0; i < N_LIBRARY_CODES; i++) {
        const char *name = asyncio_err_name(library_codes[i].value);
        ck_assert_ptr_nonnull(name);
        ck_assert_str_eq(name, library_codes[i].name);
    }
}
END_TEST

START_TEST(strerror_describes_every_library_code_from_the_error_map)
{
    for (size_t i = 0; i < N_LIBRARY_CODES; i++) {
        const char *text = asyncio_strerror(library_codes[i].value);
        ck_assert_ptr_nonnull(text);
        ck_assert_str_eq(text, library_codes[i].text);
    }
}
END_TEST

START_TEST(library_codes_are_below_minus_4095_and_distinct)
{
    for (size_t i = 0; i < N_LIBRARY_CODES; i++) {
        ck_assert_msg(library_codes[i].value < -4095, "%s is %d", library_codes[i].name,
                      library_codes[i].value);
        for (size_t j = i + 1; j < N_LIBRARY_CODES; j++)
            ck_assert_msg(library_codes[i].value != library_codes[j].value, "%s and %s share %d",
                          library_codes[i].name, library_codes[j].name, library_codes[i].value);
    }
}
END_TEST

START_TEST(error_map_has_the_codes_the_api_names)
{
    /* The codes API.md promises exist with these exact names. */
    static const int codes[] = {ASYNCIO_ECLOSED,  ASYNCIO_ERUNNING,    ASYNCIO_ESTOPPED,
                                ASYNCIO_ENOLOOP,  ASYNCIO_EINVALSTATE, ASYNCIO_ENOTASK,
                                ASYNCIO_ESSL,     ASYNCIO_ECERT,       ASYNCIO_EAI_NONAME,
                                ASYNCIO_EAI_AGAIN};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        int found = 0;
        for (size_t j = 0; j < N_LIBRARY_CODES; j++)
            found += library_codes[j].value == codes[i];
        ck_assert_int_eq(found, 1);
    }
}
END_TEST

START_TEST(err_name_names_errno_codes)
{
    ck_assert_str_eq(asyncio_err_name(-EINVAL), "EINVAL");
    ck_assert_str_eq(asyncio_err_name(-ECONNREFUSED), "ECONNREFUSED");
    ck_assert_str_eq(asyncio_err_name(-ECANCELED), "ECANCELED");
    ck_assert_str_eq(asyncio_err_name(-ENOENT), "ENOENT");
    ck_assert_str_eq(asyncio_err_name(-ETIMEDOUT), "ETIMEDOUT");
}
END_TEST

START_TEST(strerror_describes_errno_codes)
{
    static const int codes[] = {-EINVAL,    -ECONNREFUSED, -ECANCELED, -ENOENT,
                                -ETIMEDOUT, -ENOTSUP,      -EPIPE,     -EBUSY};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        const char *text = asyncio_strerror(codes[i]);
        ck_assert_ptr_nonnull(text);
        ck_assert_msg(text[0] != '\0', "empty description for %d", codes[i]);
        ck_assert_msg(strcmp(text, "unknown error") != 0, "%d described as unknown", codes[i]);
    }
}
END_TEST

START_TEST(unknown_codes_give_non_null_strings)
{
    static const int codes[] = {-4095, -4104, -4109, -4200,           -100000,
                                1,     42,    4096,  -2147483647 - 1, 2147483647};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        const char *text = asyncio_strerror(codes[i]);
        const char *name = asyncio_err_name(codes[i]);
        ck_assert_ptr_nonnull(text);
        ck_assert_ptr_nonnull(name);
    }
    ck_assert_str_eq(asyncio_strerror(-100000), "unknown error");
    ck_assert_str_eq(asyncio_err_name(-100000), "UNKNOWN");
}
END_TEST

START_TEST(version_string_matches_the_header)
{
    ck_assert_ptr_nonnull(asyncio_version_string());
    ck_assert_str_eq(asyncio_version_string(), ASYNCIO_VERSION_STRING);
}
END_TEST

START_TEST(version_number_matches_the_header)
{
    ck_assert_uint_eq(asyncio_version(), (unsigned)ASYNCIO_VERSION_HEX);
    ck_assert_uint_eq((unsigned)ASYNCIO_VERSION_HEX, ((unsigned)ASYNCIO_VERSION_MAJOR << 16) |
                                                         ((unsigned)ASYNCIO_VERSION_MINOR << 8) |
                                                         (unsigned)ASYNCIO_VERSION_PATCH);
}
END_TEST

START_TEST(version_string_matches_the_version_macros)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%d.%d.%d", ASYNCIO_VERSION_MAJOR, ASYNCIO_VERSION_MINOR,
             ASYNCIO_VERSION_PATCH);
    ck_assert_str_eq(ASYNCIO_VERSION_STRING, buf);
}
END_TEST

static Suite *errors_suite(void)
{
    Suite *s = suite_create("errors");
    TCase *tc = tcase_create("errors");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, err_name_names_every_library_code);
    tcase_add_test(tc, strerror_describes_every_library_code_from_the_error_map);
    tcase_add_test(tc, library_codes_are_below_minus_4095_and_distinct);
    tcase_add_test(tc, error_map_has_the_codes_the_api_names);
    tcase_add_test(tc, err_name_names_errno_codes);
    tcase_add_test(tc, strerror_describes_errno_codes);
    tcase_add_test(tc, unknown_codes_give_non_null_strings);
    suite_add_tcase(s, tc);

    tc = tcase_create("version");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, version_string_matches_the_header);
    tcase_add_test(tc, version_number_matches_the_header);
    tcase_add_test(tc, version_string_matches_the_version_macros);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(errors_suite()); }
