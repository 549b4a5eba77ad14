#include "assets.h"

#include <string.h>

const struct adm_asset *adm_asset_find(const char *path)
{
    if (strcmp(path, "/") == 0)
        path = "/index.html";
    for (const struct adm_asset *a = adm_assets; a->path; a++)
        if (strcmp(a->path, path) == 0)
            return a;
    return NULL;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

bool adm_asset_public(const struct adm_asset *asset)
{
    static const char *const suffixes[] = {".html", ".js", ".mjs", ".css", ".ico", ".svg"};
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++)
        if (ends_with(asset->path, suffixes[i]))
            return true;
    return false;
}
