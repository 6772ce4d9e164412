#include "control/conntrack_table.h"

#include <arpa/inet.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string>

namespace capstan::control {

ConntrackTable::~ConntrackTable() = default;

namespace {

struct HandleCloser {
  void operator()(nfct_handle* h) const { nfct_close(h); }
};
using Handle = std::unique_ptr<nfct_handle, HandleCloser>;

struct EntryDestroyer {
  void operator()(nf_conntrack* ct) const { nfct_destroy(ct); }
};
using Entry = std::unique_ptr<nf_conntrack, EntryDestroyer>;

std::optional<Protocol> protocolOf(uint8_t l4proto) {
  switch (l4proto) {
    case IPPROTO_TCP:
      return Protocol::kTCP;
    case IPPROTO_UDP:
      return Protocol::kUDP;
    case IPPROTO_SCTP:
      return Protocol::kSCTP;
    default:
      return std::nullopt;
  }
}

std::optional<IpAddress> addressOf(const nf_conntrack* ct, IpFamily family, nf_conntrack_attr v4,
                                   nf_conntrack_attr v6) {
  if (family == IpFamily::kV4) {
    if (!nfct_attr_is_set(ct, v4)) return std::nullopt;
    return IpAddress::v4(ntohl(nfct_get_attr_u32(ct, v4)));
  }
  if (!nfct_attr_is_set(ct, v6)) return std::nullopt;
  std::array<uint8_t, 16> bytes;
  std::memcpy(bytes.data(), nfct_get_attr(ct, v6), bytes.size());
  return IpAddress::v6(bytes);
}

// The fields filters look at, or nullopt for an entry they cannot match (a protocol without
// ports, such as ICMP).
std::optional<ConntrackEntryKey> keyOf(const nf_conntrack* ct, IpFamily family) {
  if (!nfct_attr_is_set(ct, ATTR_L4PROTO) || !nfct_attr_is_set(ct, ATTR_ORIG_PORT_DST)) {
    return std::nullopt;
  }
  auto protocol = protocolOf(nfct_get_attr_u8(ct, ATTR_L4PROTO));
  auto origDst = addressOf(ct, family, ATTR_ORIG_IPV4_DST, ATTR_ORIG_IPV6_DST);
  auto replySrc = addressOf(ct, family, ATTR_REPL_IPV4_SRC, ATTR_REPL_IPV6_SRC);
  if (!protocol || !origDst || !replySrc) return std::nullopt;
  return ConntrackEntryKey{family, *protocol, *origDst,
                           ntohs(nfct_get_attr_u16(ct, ATTR_ORIG_PORT_DST)), *replySrc};
}

struct DumpContext {
  IpFamily family;
  const ConntrackFilterSet* filters;
  std::vector<Entry> matches;
};

int onEntry(enum nf_conntrack_msg_type, struct nf_conntrack* ct, void* data) {
  auto* ctx = static_cast<DumpContext*>(data);
  auto key = keyOf(ct, ctx->family);
  if (!key || !ctx->filters->matches(*key)) return NFCT_CB_CONTINUE;
  // Keep the entry as the kernel described it (tuple, zone, id) for the delete: with the id, a
  // new entry that reused the tuple since the dump is not deleted by mistake.
  ctx->matches.emplace_back(ct);
  return NFCT_CB_STOLEN;
}

std::string errnoText(int err) { return std::strerror(err); }

class NetlinkConntrackTable : public ConntrackTable {
 public:
  Result<size_t> remove(const std::vector<ConntrackFilter>& filters) override {
    size_t deleted = 0;
    std::string failures;
    for (IpFamily family : {IpFamily::kV4, IpFamily::kV6}) {
      std::vector<ConntrackFilter> ofFamily;
      for (const ConntrackFilter& f : filters) {
        if (f.family == family) ofFamily.push_back(f);
      }
      if (ofFamily.empty()) continue;
      auto n = removeFamily(family, ConntrackFilterSet(ofFamily));
      if (!n.ok()) {
        failures += (failures.empty() ? "" : "; ") + n.error().message();
        continue;
      }
      deleted += *n;
    }
    if (!failures.empty()) {
      return Error("conntrack: " + failures + " (" + std::to_string(deleted) + " entries deleted)");
    }
    return deleted;
  }

 private:
  static Result<size_t> removeFamily(IpFamily family, const ConntrackFilterSet& filters) {
    std::string name(toString(family));
    DumpContext ctx{family, &filters, {}};
    {
      Handle dump(nfct_open(CONNTRACK, 0));
      if (!dump) return Error(name + " table: cannot open ctnetlink: " + errnoText(errno));
      nfct_callback_register(dump.get(), NFCT_T_ALL, onEntry, &ctx);
      uint32_t af = family == IpFamily::kV4 ? AF_INET : AF_INET6;
      if (nfct_query(dump.get(), NFCT_Q_DUMP, &af) != 0) {
        return Error(name + " table: dump failed: " + errnoText(errno));
      }
    }
    if (ctx.matches.empty()) return size_t{0};
    // Deletes go on their own socket: a handle cannot take a request while its dump runs, and
    // deleting from the callback would change the table under the kernel's dump cursor.
    Handle del(nfct_open(CONNTRACK, 0));
    if (!del) return Error(name + " table: cannot open ctnetlink: " + errnoText(errno));
    size_t deleted = 0;
    size_t failed = 0;
    int firstErrno = 0;
    for (const Entry& entry : ctx.matches) {
      if (nfct_query(del.get(), NFCT_Q_DESTROY, entry.get()) == 0) {
        ++deleted;
      } else if (errno != ENOENT) {  // ENOENT: it expired or was deleted since the dump
        if (failed++ == 0) firstErrno = errno;
      }
    }
    if (failed > 0) {
      return Error(name + " table: " + std::to_string(failed) + " of " +
                   std::to_string(ctx.matches.size()) + " matching entries could not be deleted: " +
                   errnoText(firstErrno) + " (" + std::to_string(deleted) + " were)");
    }
    return deleted;
  }
};

}  // namespace

std::unique_ptr<ConntrackTable> makeNetlinkConntrackTable() {
  return std::make_unique<NetlinkConntrackTable>();
}

StaleConntrackCleaner::StaleConntrackCleaner(ConntrackTable& table)
    : table_(table),
      last_(std::make_shared<const ProxyState>(0, NodeInfo{}, ServicePortList{}, IngressState{})) {}

ConntrackCleanupReport StaleConntrackCleaner::synced(std::shared_ptr<const ProxyState> state) {
  ConntrackCleanupReport report;
  report.filters = staleConntrackFilters(*last_, *state);
  last_ = std::move(state);
  if (report.filters.empty()) return report;
  auto deleted = table_.remove(report.filters);
  if (deleted.ok()) {
    report.deleted = *deleted;
  } else {
    report.error = deleted.error();
  }
  return report;
}

}  // namespace capstan::control
