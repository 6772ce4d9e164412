// Which conntrack entries a sync leaves stale, as filters: kube-proxy's UDP conntrack cleanup
// (pkg/proxy/conntrack/cleanup.go), computed from two snapshots instead of from change records.
//
// Why: conntrack sends every datagram of a known UDP flow the way its first datagram went. When
// an endpoint goes away, a client that keeps sending from the same port keeps reaching the dead
// endpoint until the entry times out (which, for a flow that keeps sending, is never); when a
// Service goes from no endpoints to some, flows that were seen while it had none stay un-NATed.
// TCP does not need this (a dead backend resets or times out the connection, and the client makes
// a new one); SCTP is left alone, as kube-proxy leaves it.
//
// Pure: the control loop computes the filters after each successful sync of a kernel dataplane
// and hands them to a ConntrackTable (control/conntrack_table.h), which deletes the entries.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "model/ip.h"
#include "model/proxy_state.h"
#include "model/service.h"

namespace capstan {

// Conntrack entries to delete: every set field must match (an unset field matches anything).
// "orig" is the direction the client sent (its destination is the Service's VIP or NodePort),
// "reply" the direction back (its source is the endpoint the flow was DNATed to).
struct ConntrackFilter {
  IpFamily family = IpFamily::kV4;
  Protocol protocol = Protocol::kUDP;
  std::optional<IpAddress> origDst;
  std::optional<uint16_t> origDstPort;
  std::optional<IpAddress> replySrc;

  // "IPv4 UDP orig-dst=10.96.0.10 orig-dport=53 reply-src=10.0.0.1", for logs.
  std::string toString() const;

  auto operator<=>(const ConntrackFilter&) const = default;
  bool operator==(const ConntrackFilter&) const = default;
};

// The fields of one conntrack entry that filters look at.
struct ConntrackEntryKey {
  IpFamily family = IpFamily::kV4;
  Protocol protocol = Protocol::kUDP;
  IpAddress origDst;
  uint16_t origDstPort = 0;
  IpAddress replySrc;
};

// Matches entries against a set of filters in O(log filters) per entry (a dump of a busy node's
// table has hundreds of thousands of entries, and the first sync after start-up makes a filter
// for every UDP frontend).
class ConntrackFilterSet {
 public:
  explicit ConntrackFilterSet(std::span<const ConntrackFilter> filters);

  bool matches(const ConntrackEntryKey& entry) const;
  bool empty() const { return byDst_.empty() && byPort_.empty() && rest_.empty(); }

 private:
  static bool matchesOne(const ConntrackFilter& f, const ConntrackEntryKey& e);

  std::vector<ConntrackFilter> byDst_;   // with origDst, sorted by it
  std::vector<ConntrackFilter> byPort_;  // without origDst but with origDstPort, sorted by port
  std::vector<ConntrackFilter> rest_;    // neither: checked one by one
};

// The filters for the entries that programming `after` leaves stale when the dataplane held
// `before` (the last state programmed successfully; an empty state before the first sync).
//
// Per UDP service port of a proxied Service, per IP family the Service has a ClusterIP of, with
// "frontends" its ClusterIP:port, externalIP:port and loadBalancerIP:port of that family, and
// its NodePort (any destination address):
// - an endpoint deleted: one that flows may have reached — selected
//   (EndpointSelection::allReachable) or still serving — and now neither selected nor serving
//   (compared as IP:port). Entries through each frontend that stays, answered by that endpoint's
//   IP (kube-proxy's ClearEntriesForNAT and, for the NodePort, ClearEntriesForPortNAT).
//   A terminating endpoint that still serves keeps its flows even when it is no longer
//   selected (graceful termination, kube-proxy's IsServing() test); they go when it stops
//   serving or disappears.
// - a frontend gone (the port, the Service, the address or the NodePort removed): every entry
//   through it (ClearEntriesForIP / ClearEntriesForPort, for deleted UDP ClusterIPs);
// - a frontend newly active: the port went from no selected endpoint to some (or is new, or
//   the frontend is new) — every entry through it, which may have been created un-NATed or
//   rejected while nothing was behind it (kube-proxy's "newly active UDP services").
//
// VIP filters carry the service port as well as the address (as kube-proxy >= 1.31 does), so
// that other ports sharing the address — a LoadBalancer IP shared between Services, the other
// ports of the same Service — keep their flows.
//
// Ports whose shared_ptr is the same in both snapshots are skipped without being looked at, so
// the cost is one pointer comparison per unchanged port plus the work for the changed ones.
// The result is sorted and without duplicates; a filter for every entry through a frontend
// absorbs the narrower ones for the same frontend.
std::vector<ConntrackFilter> staleConntrackFilters(const ProxyState& before,
                                                   const ProxyState& after);

}  // namespace capstan
