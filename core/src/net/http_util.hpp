#pragma once
// Small HTTP helpers shared by the server's routes.
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <map>
#include <string>
#include <string_view>

namespace phasekit::net {

namespace http = boost::beast::http;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

/// The decoded query parameters of a request target ("/socket.io/?EIO=4&sid=x" → {EIO: 4, sid: x}).
/// Malformed percent escapes make the whole query invalid (returns false).
bool parse_query(std::string_view target, std::map<std::string, std::string, std::less<>>& out);
/// The path part of a target, without the query.
std::string_view target_path(std::string_view target);

Response make_response(const Request& req, http::status status, std::string body,
                       std::string_view content_type = "text/plain; charset=UTF-8");

}  // namespace phasekit::net
