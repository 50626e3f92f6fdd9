// The login screen of R13 and, with the client certificate, the login
// itself (ログイン) and logout.

#include "core/portal_screens.hpp"

namespace certgate {

static PortalResponse login_screen(const Runtime &rt_, Portal::Context &c) {
    PageData data{PageData::type::object};
    std::string message;
    auto it = c.req.query.find("error");
    ErrorCode code;
    if (it != c.req.query.end() && parse_error_code(it->second, &code)) {
        message = error_message(code, c.lang);
    }
    if (c.req.method == "POST") {
        c.res.status = 405;
        return c.res;
    }
    return render_page(rt_, c, "login", page_words(c.lang).at("login_title"), std::move(data), 200,
                       message, nullptr);
}

bool login_routes(const std::string &path) { return path.empty(); }

PortalResponse login_screens(const Runtime &rt, Portal::Context &c) { return login_screen(rt, c); }

}  // namespace certgate
