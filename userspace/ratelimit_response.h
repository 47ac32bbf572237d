// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The HTTP answer of action respond: 429 Too Many Requests with Retry-After,
// the IETF draft's RateLimit-Policy and RateLimit fields, a small JSON body
// in the style of a Flask-Limiter error handler, and Connection: close.
// Pure: no kernel access; the responder fills in what the maps say.
#pragma once

#include <cstdint>
#include <string>

#include "datapath.h"

namespace sluice {

// For a connection the data path handed over: the limit that refused it is
// the one that admits the next unit last.
std::string tooManyRequestsResponse(const RespondedConnection& conn);

// For a connection with no record (it expired, or the responder's own port
// was dialled): 429 without policy fields, Retry-After 1.
std::string tooManyRequestsResponse();

}  // namespace sluice
