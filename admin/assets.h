/*
 * assets: the console's files, built into sluice-admin from admin/www at build time
 * (embed.cmake), so that the console works with no files on disk and no internet.
 */
#ifndef ADM_ASSETS_H
#define ADM_ASSETS_H

#include <stdbool.h>
#include <stddef.h>

struct adm_asset {
    const char *path; /* URL path: "/" + the path under admin/www; NULL ends adm_assets[] */
    const char *content_type;
    const unsigned char *data;
    size_t len;
};

/* The generated table, ended by a zero entry. */
extern const struct adm_asset adm_assets[];

/* The asset of URL path `path` ("/" is "/index.html"), or NULL. Static data. */
const struct adm_asset *adm_asset_find(const char *path);

/* Whether an asset is served without a token: what the console needs to show its login (its
 * page, scripts, styles, icon); anything else asks for the token like the API. */
bool adm_asset_public(const struct adm_asset *asset);

#endif
