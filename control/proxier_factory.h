// The proxy modes built into this binary, and the Proxier for the one --proxy-mode names.
// Each L4 mode arrives with its issue; until then its name is accepted by the flag parser and
// refused here with a clear message.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "control/config.h"
#include "model/proxier.h"
#include "model/result.h"

namespace capstan::control {

std::vector<ProxyMode> builtProxyModes();
std::string builtModeNames();  // "iptables,none"

// The Proxier for config.mode; nullptr (not an error) for "none", which programs no L4 dataplane.
Result<std::unique_ptr<Proxier>> makeProxier(const Config& config);

}  // namespace capstan::control
