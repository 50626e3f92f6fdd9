// The account screens (issue 7): the master user's first registration, the
// general user's new password, and the master's pages for general users.

#include "core/portal_screens.hpp"

namespace certgate {

bool account_routes(const std::string &) { return false; }

PortalResponse account_screens(const Runtime &, Portal::Context &c) {
    c.res.status = 404;
    return c.res;
}

}  // namespace certgate
