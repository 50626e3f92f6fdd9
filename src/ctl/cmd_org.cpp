// certgatectl org add|list|show: organisations (団体, R16).
#include <iomanip>
#include <iostream>

#include "ctl/ctl.hpp"

namespace certgate::ctl {

namespace {

void check_org_id(const std::string& id) {
    bool ok = !id.empty() && id.size() <= 32;
    for (char c : id)
        ok = ok && ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_');
    if (!ok)
        throw UsageError("organisation ID '" + id +
                         "' is invalid: use 1-32 letters, digits, '-' or '_'");
}

}  // namespace

void print_user_table(const std::vector<User>& users, int64_t now);

int cmd_org_add(Context& ctx) {
    const std::string id = ctx.args.positional(0, "ORG_ID");
    check_org_id(id);
    const std::string name = ctx.args.value("--name", id);
    ctx.store().add_org(Organisation{id, name, 0}, ctx.actor());
    if (ctx.json)
        print_json(Json{{"org", id}, {"name", name}});
    else
        std::cout << "added organisation " << id << " (" << name << ")\n";
    return kOk;
}

int cmd_org_list(Context& ctx) {
    Store& store = ctx.store();
    auto orgs = store.list_orgs();
    if (ctx.json) {
        Json items = Json::array();
        for (const auto& o : orgs) {
            auto users = store.list_users(o.id);
            std::string master;
            for (const auto& u : users)
                if (u.role == Role::master && u.state != UserState::disabled) master = u.id;
            items.push_back(Json{{"org", o.id},
                                 {"name", o.name},
                                 {"created_at", o.created_at},
                                 {"master", master},
                                 {"users", static_cast<int64_t>(users.size())}});
        }
        print_json(items);
        return kOk;
    }
    std::cout << std::left << std::setw(20) << "ORG" << std::setw(14) << "MASTER" << std::setw(7)
              << "USERS"
              << "NAME\n";
    for (const auto& o : orgs) {
        auto users = store.list_users(o.id);
        std::string master = "-";
        for (const auto& u : users)
            if (u.role == Role::master && u.state != UserState::disabled) master = u.id;
        std::cout << std::setw(20) << o.id << std::setw(14) << master << std::setw(7)
                  << users.size() << o.name << "\n";
    }
    return kOk;
}

int cmd_org_show(Context& ctx) {
    const std::string id = ctx.args.positional(0, "ORG_ID");
    Store& store = ctx.store();
    auto org = store.find_org(id);
    if (!org) throw StoreNotFound("organisation " + id + " does not exist");
    auto users = store.list_users(id);
    if (ctx.json) {
        Json items = Json::array();
        for (const auto& u : users) items.push_back(user_json(u));
        print_json(Json{{"org", org->id},
                        {"name", org->name},
                        {"created_at", org->created_at},
                        {"users", items}});
        return kOk;
    }
    std::cout << "organisation  " << org->id << "\n"
              << "name          " << org->name << "\n"
              << "created       " << format_time(org->created_at) << "\n\n";
    print_user_table(users, store.now());
    return kOk;
}

}  // namespace certgate::ctl
