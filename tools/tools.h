/* Shared declarations of the tools library (tern_tools). */
#ifndef TERN_TOOLS_H
#define TERN_TOOLS_H
#endif
