/* The files of tern serve's web page (host/serve/web/: a chat with the served model), built into the
 * binary by cmake/embed.cmake, so the server needs nothing beside it. */
#ifndef TERN_WEB_UI_H
#define TERN_WEB_UI_H

#include "../../scheduler/embedded.h"

extern const struct tern_embedded_file tern_web_files[];
extern const int tern_web_n_files;

#endif
