/* dashboard.h - the web dashboard, compiled into the program.
 *
 * The files of dashboard/ (index.html, app.js, style.css) as es_http_asset
 * rows, generated at build time by cmake/EsEmbed.cmake. Hand them to
 * es_http_assets(); they live as long as the program.
 */
#ifndef ES_DASHBOARD_H
#define ES_DASHBOARD_H

#include <stddef.h>

#include "http.h"

extern const es_http_asset es_dashboard_assets[];
extern const size_t es_dashboard_assets_count;

#endif
