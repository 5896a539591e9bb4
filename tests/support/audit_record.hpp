#pragma once
// An audit record with every field set, for the store tests: requested 20 ms before it finished, and
// arguments that are not UTF-8 (a store must keep them byte for byte).
#include <cstdint>
#include <string>

#include "phasekit/plugin/store.hpp"

namespace phasekit::test {

inline plugin::AuditRecord audit_record(const std::string& session, const std::string& call, const std::string& user,
                                        std::int64_t finished) {
  plugin::AuditRecord r;
  r.call_id = call;
  r.user_id = user;
  r.session_id = session;
  r.instance = "i1";
  r.tool = "shell";
  r.args = R"({"command":"echo \u00e9 \xff"})";
  r.approved = true;
  r.outcome = "ok";
  r.exit_code = 0;
  r.duration_ms = 12;
  r.output_bytes = 3;
  r.requested_unix_ms = finished - 20;
  r.finished_unix_ms = finished;
  return r;
}

}  // namespace phasekit::test
