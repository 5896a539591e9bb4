#pragma once
// Small HTTP helpers shared by the server's routes.
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <cstddef>

#include <map>
#include <string>
#include <string_view>

#include "phasekit/net/origin_policy.hpp"

namespace phasekit::net {

namespace http = boost::beast::http;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;
using RequestParser = http::request_parser<http::string_body>;

/// Request line and headers together: what a browser or socket.io-client sends fits many times over.
inline constexpr std::size_t kMaxRequestHeaderBytes = 16 * 1024;

/// The limits of every request the server reads: headers up to kMaxRequestHeaderBytes, a body up to
/// the largest Engine.IO payload plus 1 KiB of slack (more is answered 413 without being read).
void limit_request(RequestParser& parser, std::size_t max_payload_bytes);

/// The decoded query parameters of a request target ("/socket.io/?EIO=4&sid=x" → {EIO: 4, sid: x}).
/// Malformed percent escapes make the whole query invalid (returns false).
bool parse_query(std::string_view target, std::map<std::string, std::string, std::less<>>& out);
/// The path part of a target, without the query.
std::string_view target_path(std::string_view target);

Response make_response(const Request& req, http::status status, std::string body,
                       std::string_view content_type = "text/plain; charset=UTF-8");

/// An Engine.IO error as its clients read it: `status` with {"code":code,"message":message}.
Response json_error(const Request& req, http::status status, int code, std::string_view message);

/// The policy's verdict on the request's Origin (against its Host).
OriginVerdict judge_origin(const OriginPolicy& policy, const Request& req);
/// The CORS headers of an allowed cross-origin request (none for the other verdicts).
void add_cors(const Request& req, OriginVerdict verdict, Response& res);
/// The answer to a CORS preflight (OPTIONS): 403 for a refused origin; else 204 naming the methods
/// and request headers the Engine.IO endpoint takes — a fixed list, never the ones asked for.
Response preflight(const Request& req, OriginVerdict verdict);
/// 403 {"code":4,"message":"Origin not allowed"}: a page of a site ALLOWED_ORIGINS does not list.
Response origin_refused(const Request& req);

}  // namespace phasekit::net
