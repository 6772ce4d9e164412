// Logging set-up: spdlog to stderr in klog's layout ("I1124 18:35:00.123456 1234] message"), so
// log tooling built for kube-proxy reads Capstan's lines too. -v maps to levels: 0-1 info,
// 2-3 debug, 4+ trace.
#pragma once

namespace capstan::control {

void setupLogging(int verbosity);

}  // namespace capstan::control
