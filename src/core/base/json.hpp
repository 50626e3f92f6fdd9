// JSON bodies (the portal's answers, health, the audit trail's JSONL and
// certgatectl --json) are nlohmann::ordered_json: keys stay in the order
// written, which is the order the docs and the tests read.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace certgate {

using Json = nlohmann::ordered_json;

// One line of JSON with UTF-8 as it is (the messages are Japanese). Bytes
// that are not UTF-8 become U+FFFD instead of an exception: never a 500.
inline std::string json_line(const Json &j) {
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// A response body: one line of JSON and a newline.
inline std::string json_body(const Json &j) { return json_line(j) + "\n"; }

}  // namespace certgate
