// What every source of Kubernetes objects hands to the change tracker: object events, and
// diagnostics about input it could not use.
#pragma once

#include <cstdint>
#include <string>

#include "control/decoder.h"

namespace capstan::control {

struct ObjectEvent {
  enum class Type : uint8_t { kUpsert, kDelete };
  Type type = Type::kUpsert;
  ObjectKey key;
  KubeObject object;  // kUpsert only
  // Wall-clock time of the change that caused this event, Unix ns: when the source saw it, or
  // the EndpointSlice's last-change-trigger-time annotation where there is one (as kube-proxy
  // uses it for network_programming_duration_seconds). 0 when unknown.
  int64_t triggerTimeNs = 0;
};

struct Diagnostic {
  enum class Severity : uint8_t {
    kError,    // input rejected; the last good state of what it describes stays in effect
    kWarning,  // input used, but probably not as meant (an object defined twice)
    kIgnored,  // valid input Capstan has no use for
  };
  Severity severity = Severity::kError;
  std::string file;  // empty when not from a file
  uint32_t line = 0;
  std::string message;

  // "dir/web.yaml:12: Service default/web: spec.ports[0].port: must be ..."
  std::string toString() const;
};

}  // namespace capstan::control
