/* Replays the fuzzers' seed corpora (fuzz/corpus/<name>/) and any saved crash inputs
 * (fuzz/regressions/<name>/) through the fuzz targets, built here with the project's
 * compiler and sanitizers: every input the fuzzers ever tripped on stays a test. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define LLVMFuzzerTestOneInput fuzz_decode_one
#include "../../fuzz/fuzz_decode.c"
#undef LLVMFuzzerTestOneInput
#undef CHECK
#undef MAX_BYTES
#define LLVMFuzzerTestOneInput fuzz_mustache_one
#include "../../fuzz/fuzz_mustache.c"
#undef LLVMFuzzerTestOneInput
#undef CHECK
#define LLVMFuzzerTestOneInput fuzz_smtp_headers_one
#include "../../fuzz/fuzz_smtp_headers.c"
#undef LLVMFuzzerTestOneInput
#undef CHECK

typedef int (*target_fn)(const uint8_t *, size_t);

/* Runs every file of dir through fn; returns the number of files (0 if no dir). */
static size_t replay_dir(const char *dir, target_fn fn)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        assert_int_equal(fseek(f, 0, SEEK_END), 0);
        long len = ftell(f);
        assert_true(len >= 0);
        rewind(f);
        uint8_t *buf = malloc((size_t)len + 1);
        assert_non_null(buf);
        assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
        fclose(f);
        fn(buf, (size_t)len);
        free(buf);
        n++;
    }
    closedir(d);
    return n;
}

static void replay(const char *name, target_fn fn, size_t min_seeds)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/fuzz/corpus/%s", B2BD_SOURCE_DIR, name);
    size_t seeds = replay_dir(dir, fn);
    snprintf(dir, sizeof dir, "%s/fuzz/regressions/%s", B2BD_SOURCE_DIR, name);
    size_t regressions = replay_dir(dir, fn);
    print_message("%s: %zu seeds, %zu regressions\n", name, seeds, regressions);
    assert_true(seeds >= min_seeds);
}

static void test_decode_corpus(void **state)
{
    (void)state;
    replay("decode", fuzz_decode_one, 30);
}

static void test_mustache_corpus(void **state)
{
    (void)state;
    replay("mustache", fuzz_mustache_one, 20);
}

static void test_smtp_headers_corpus(void **state)
{
    (void)state;
    replay("smtp_headers", fuzz_smtp_headers_one, 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_corpus),
        cmocka_unit_test(test_mustache_corpus),
        cmocka_unit_test(test_smtp_headers_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
