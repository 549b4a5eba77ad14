/*
 * The driver of a harness built without libFuzzer (gcc, or clang without SLUICE_FUZZ): runs
 * LLVMFuzzerTestOneInput once over every file named on the command line and every regular file
 * of every directory named (in name order, not recursive), as libFuzzer's `-runs=0 DIR...` does, so
 * ctest runs the same command in both kinds of build tree. Arguments starting with '-' are
 * libFuzzer flags and are ignored. Exits 1 when a path cannot be read or nothing was run.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz_main: %s: cannot open\n", path);
        return -1;
    }
    uint8_t *buf = malloc(FUZZ_INPUT_MAX + 1);
    size_t n = buf ? fread(buf, 1, FUZZ_INPUT_MAX + 1, f) : 0;
    int rc = buf && !ferror(f) ? 0 : -1;
    fclose(f);
    if (rc == 0) {
        fprintf(stderr, "fuzz_main: running %s (%zu bytes)\n", path, n);
        /* A copy of exactly n bytes, so that ASan sees a read past the input. */
        uint8_t *input = malloc(n ? n : 1);
        if (!input)
            rc = -1;
        else {
            memcpy(input, buf, n);
            LLVMFuzzerTestOneInput(input, n);
            free(input);
        }
    } else {
        fprintf(stderr, "fuzz_main: %s: cannot read\n", path);
    }
    free(buf);
    return rc;
}

/* The regular files of `path`, in name order. */
static int run_dir(const char *path, size_t *count)
{
    struct dirent **names = NULL;
    int n = scandir(path, &names, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "fuzz_main: %s: cannot list\n", path);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char full[4096];
        struct stat st;
        int len = snprintf(full, sizeof(full), "%s/%s", path, names[i]->d_name);
        if (rc == 0 && (len < 0 || (size_t)len >= sizeof(full))) {
            fprintf(stderr, "fuzz_main: %s/%s: path too long\n", path, names[i]->d_name);
            rc = -1;
        }
        if (rc == 0 && stat(full, &st) == 0 && S_ISREG(st.st_mode)) {
            rc = run_file(full);
            *count += rc == 0;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    size_t count = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (argv[i][0] == '-')
            continue;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "fuzz_main: %s: no such file or directory\n", argv[i]);
            return 1;
        }
        if (S_ISDIR(st.st_mode) ? run_dir(argv[i], &count) != 0 : run_file(argv[i]) != 0)
            return 1;
        count += !S_ISDIR(st.st_mode);
    }
    fprintf(stderr, "fuzz_main: %zu inputs run\n", count);
    return count ? 0 : 1;
}
