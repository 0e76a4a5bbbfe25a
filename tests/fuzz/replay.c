/*
 * The plain driver: feeds each file of the given directories (or the given
 * files) to LLVMFuzzerTestOneInput once, in name order, so `make test` replays
 * the checked-in seed corpora with gcc under ASan+UBSan, without libFuzzer.
 * An empty corpus fails: a replay that feeds nothing tests nothing.
 */
#define _DEFAULT_SOURCE
#include "fuzz.h"

#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long size;
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        if (f)
            fclose(f);
        return -1;
    }
    buf = malloc((size_t)size + 1); /* +1: a 0-byte input still gets a valid pointer */
    if (buf == NULL || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, (size_t)size);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    size_t total = 0;
    int i, j, n;
    for (i = 1; i < argc; i++) {
        struct stat st;
        struct dirent **names;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: no such file or directory: %s\n", argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (replay_file(argv[i]) != 0)
                return 1;
            total++;
            continue;
        }
        n = scandir(argv[i], &names, NULL, alphasort);
        if (n < 0) {
            fprintf(stderr, "replay: cannot list %s\n", argv[i]);
            return 1;
        }
        for (j = 0; j < n; j++) {
            char path[4096];
            if (names[j]->d_name[0] != '.') {
                snprintf(path, sizeof path, "%s/%s", argv[i], names[j]->d_name);
                if (replay_file(path) != 0)
                    return 1;
                total++;
            }
            free(names[j]);
        }
        free(names);
    }
    printf("%zu inputs replayed\n", total);
    return total ? 0 : 1;
}
