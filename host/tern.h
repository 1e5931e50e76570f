/* tern's public API: everything another program needs to embed the runtime.
 *
 *   tern_model_create      map and validate a GGUF model          (model.h)
 *   tern_tokenizer_create  its tokenizer                          (tokenizer.h)
 *   tern_session_create    the model on a device, with a KV cache (session.h)
 *   tern_generate          prompt -> streamed continuation         (generate.h)
 *
 * Each object made by X_create is released by X_free, which accepts NULL.
 *
 * Every fallible function returns a tern_status (scheduler/status.h); diagnostics go through the
 * log callback (scheduler/log.h), never to stdout. */
#ifndef TERN_H
#define TERN_H

#define TERN_VERSION "0.1.0"

#include "../scheduler/log.h"
#include "../scheduler/status.h"
#include "generate/generate.h"
#include "generate/perplexity.h"
#include "generate/sampler.h"
#include "generate/session.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

#endif
