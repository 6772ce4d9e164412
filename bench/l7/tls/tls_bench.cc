// TLS termination (l7/tls/): handshakes against a ServerContext and certificate selection in a
// CertificateSet, at the size of a large shared ingress tier.
//
//  - BM_FullHandshake/{ec,rsa}: a full TLS 1.3 handshake (X25519, no ticket offered) for an exact
//    SNI name, against a ServerContext whose published set holds 10,000 host names (100 Secrets of
//    99 exact hosts and one wildcard each, plus the benchmarked certificate): EC P-256 or
//    RSA-2048 certificate. Client and server run in this thread over an in-memory BIO pair, so a
//    figure is the CPU of both ends (the client's key share and signature check included).
//  - BM_ResumedHandshake: the same, resuming with the ticket the previous connection got (RFC 8446
//    2.2; a TLS 1.3 client uses a ticket once), sealed under TicketKeys.
//  - BM_Select/{exact,wildcard,miss}: CertificateSet::select at 10,000 host names, over 4,096
//    distinct names in random order; miss goes through both probes to the default.
//
// Peer, in the same run on the same certificates and the same client: plain OpenSSL, one SSL_CTX
// holding the one certificate, no SNI callback, OpenSSL's own ticket keys (BM_Plain*). The ratio
// Capstan/plain is the cost of what Capstan adds per handshake: the certificate callback (the
// select(), SSL_use_cert_and_key on the connection) and the TicketKeys callback.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "l7/tls/certificate_set.h"
#include "l7/tls/self_signed_certificate.h"
#include "l7/tls/server_context.h"
#include "tests/l7/tls/tls_test_support.h"

namespace capstan::l7::tls {
namespace {

using namespace capstan::l7::tls::testing;

constexpr int kSecrets = 100;
constexpr int kExactPerSecret = 99;  // + one wildcard per Secret: 10,000 host names
constexpr size_t kNames = 4096;

std::string exactHost(int secret, int host) {
  return "host-" + std::to_string(host) + ".zone-" + std::to_string(secret) + ".example.net";
}
std::string zone(int secret) { return "zone-" + std::to_string(secret) + ".example.net"; }

// Everything the benchmarks share, made once.
struct Fixture {
  Fixture() {
    TestPki pki;
    std::vector<CertificateSource> sources;
    for (int s = 0; s < kSecrets; ++s) {
      std::vector<std::string> hosts;
      for (int h = 0; h < kExactPerSecret; ++h) hosts.push_back(exactHost(s, h));
      hosts.push_back("*." + zone(s));
      sources.push_back(pki.issue("bench/zone-" + std::to_string(s), std::move(hosts),
                                  {.commonName = zone(s), .dnsNames = {"*." + zone(s)}}));
    }
    ec = pki.issue("bench/ec-tls", {"ec.example.com"}, KeyKind::kEcP256);
    rsa = pki.issue("bench/rsa-tls", {"rsa.example.com"}, KeyKind::kRsa2048);
    sources.push_back(ec);
    sources.push_back(rsa);
    Result<PemCertificate> generated = generateSelfSignedCertificate();
    require(generated.ok(), "generateSelfSignedCertificate");
    Result<CertificateSet::Built> built = CertificateSet::build(
        sources, {"capstan/default", {}, generated->certificatePem, generated->privateKeyPem},
        std::chrono::system_clock::now());
    require(built.ok() && built->errors.empty(), "CertificateSet::build");
    set = built->set;
    Result<std::shared_ptr<TicketKeys>> keys = TicketKeys::create();
    require(keys.ok(), "TicketKeys::create");
    Result<std::unique_ptr<ServerContext>> made = ServerContext::create({}, set, keys.value());
    require(made.ok(), "ServerContext::create");
    server = std::move(made.value());
    plainEc = plainContext(ec);
    plainRsa = plainContext(rsa);

    std::mt19937 random(42);
    for (size_t i = 0; i < kNames; ++i) {
      const int s = static_cast<int>(random() % kSecrets);
      exactNames.push_back(exactHost(s, static_cast<int>(random() % kExactPerSecret)));
      wildcardNames.push_back("other-" + std::to_string(random() % 1000) + "." + zone(s));
      missNames.push_back("host-" + std::to_string(random() % 1000) + ".nowhere.example.org");
    }
  }

  // The peer: one certificate, as a single-site server configures OpenSSL; the same protocol
  // settings as ServerContext so that the handshakes do the same cryptography.
  static SslCtxPtr plainContext(const CertificateSource& source) {
    SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
    BioPtr certificate = memoryBio(source.certificatePem);
    BioPtr key = memoryBio(source.privateKeyPem);
    X509Ptr leaf(PEM_read_bio_X509(certificate.get(), nullptr, nullptr, nullptr));
    X509Ptr intermediate(PEM_read_bio_X509(certificate.get(), nullptr, nullptr, nullptr));
    EvpPkeyPtr privateKey(PEM_read_bio_PrivateKey(key.get(), nullptr, nullptr, nullptr));
    require(ctx != nullptr && leaf != nullptr && intermediate != nullptr && privateKey != nullptr,
            "plain context");
    require(SSL_CTX_use_certificate(ctx.get(), leaf.get()) == 1 &&
                SSL_CTX_use_PrivateKey(ctx.get(), privateKey.get()) == 1 &&
                SSL_CTX_add1_chain_cert(ctx.get(), intermediate.get()) == 1,
            "plain context certificate");
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(ctx.get(), std::string(kIntermediateCiphers).c_str());
    SSL_CTX_set1_groups_list(ctx.get(), "X25519:P-256:P-384");
    SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
    return ctx;
  }

  CertificateSource ec, rsa;
  std::shared_ptr<const CertificateSet> set;
  std::unique_ptr<ServerContext> server;
  SslCtxPtr plainEc, plainRsa;
  std::vector<std::string> exactNames, wildcardNames, missNames;
};

Fixture& fixture() {
  static Fixture* f = new Fixture();
  return *f;
}

void fullHandshakes(benchmark::State& state, SSL_CTX* server, const char* serverName) {
  const ClientOptions options{.serverName = serverName, .maxVersion = TLS1_3_VERSION};
  SslCtxPtr client = makeClientContext(options);
  for (auto _ : state) {
    Handshake h = handshake(server, client.get(), options);
    if (!h.ok) {
      state.SkipWithError(h.error.c_str());
      return;
    }
    benchmark::DoNotOptimize(h.server.get());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

void resumedHandshakes(benchmark::State& state, SSL_CTX* server, const char* serverName) {
  ClientOptions options{.serverName = serverName, .maxVersion = TLS1_3_VERSION};
  SslCtxPtr client = makeClientContext(options);
  Handshake first = handshake(server, client.get(), options);
  SSL_SESSION* session = first.ok ? first.takeSession() : nullptr;
  for (auto _ : state) {
    options.session = session;
    Handshake h = handshake(server, client.get(), options);
    if (!h.ok || SSL_session_reused(h.client.get()) != 1) {
      state.SkipWithError(h.ok ? "not resumed" : h.error.c_str());
      break;
    }
    SSL_SESSION_free(session);
    session = h.takeSession();  // the next ticket: each is used once
  }
  SSL_SESSION_free(session);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

void BM_FullHandshake_Ec(benchmark::State& state) {
  fullHandshakes(state, fixture().server->nativeHandle(), "ec.example.com");
}
void BM_PlainFullHandshake_Ec(benchmark::State& state) {
  fullHandshakes(state, fixture().plainEc.get(), "ec.example.com");
}
void BM_FullHandshake_Rsa(benchmark::State& state) {
  fullHandshakes(state, fixture().server->nativeHandle(), "rsa.example.com");
}
void BM_PlainFullHandshake_Rsa(benchmark::State& state) {
  fullHandshakes(state, fixture().plainRsa.get(), "rsa.example.com");
}
void BM_ResumedHandshake(benchmark::State& state) {
  resumedHandshakes(state, fixture().server->nativeHandle(), "ec.example.com");
}
void BM_PlainResumedHandshake(benchmark::State& state) {
  resumedHandshakes(state, fixture().plainEc.get(), "ec.example.com");
}

void selectFrom(benchmark::State& state, const std::vector<std::string>& names,
                std::string_view expectPrefix) {
  const CertificateSet& set = *fixture().set;
  if (!set.select(names[0]).name().starts_with(expectPrefix)) {
    state.SkipWithError("select() did not answer as this benchmark expects");
    return;
  }
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(&set.select(names[i]));
    i = (i + 1) & (kNames - 1);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
void BM_Select_Exact(benchmark::State& state) {
  selectFrom(state, fixture().exactNames, "bench/zone-");
}
void BM_Select_Wildcard(benchmark::State& state) {
  selectFrom(state, fixture().wildcardNames, "bench/zone-");
}
void BM_Select_Miss(benchmark::State& state) {
  selectFrom(state, fixture().missNames, "capstan/default");
}

BENCHMARK(BM_FullHandshake_Ec)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_PlainFullHandshake_Ec)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_FullHandshake_Rsa)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_PlainFullHandshake_Rsa)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ResumedHandshake)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_PlainResumedHandshake)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Select_Exact);
BENCHMARK(BM_Select_Wildcard);
BENCHMARK(BM_Select_Miss);

// Prints as the console reporter does, and keeps each benchmark's CPU seconds per iteration for
// the ratios (CPU time: everything here is single-threaded, and on a shared machine wall time
// also counts the waits for a core).
class CpuTimeReporter : public benchmark::ConsoleReporter {
 public:
  using ConsoleReporter::ConsoleReporter;
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.error_occurred || run.iterations == 0) continue;
      // One run, or with --benchmark_repetitions the mean (later runs of a name overwrite).
      if (run.run_type == Run::RT_Iteration) {
        cpuSeconds_[run.run_name.function_name] =
            run.cpu_accumulated_time / static_cast<double>(run.iterations);
      } else if (run.aggregate_name == "mean") {
        cpuSeconds_[run.run_name.function_name] =
            run.GetAdjustedCPUTime() / benchmark::GetTimeUnitMultiplier(run.time_unit);
      }
    }
    ConsoleReporter::ReportRuns(runs);
  }
  void printRatio(const char* what, const std::string& capstan, const std::string& peer) const {
    auto a = cpuSeconds_.find(capstan), b = cpuSeconds_.find(peer);
    if (a == cpuSeconds_.end() || b == cpuSeconds_.end()) return;
    std::printf(
        "  %-26s Capstan %8.1f us (%6.0f/s)  plain OpenSSL %8.1f us (%6.0f/s)  ratio %.3f\n", what,
        a->second * 1e6, 1 / a->second, b->second * 1e6, 1 / b->second, a->second / b->second);
  }

 private:
  std::map<std::string, double> cpuSeconds_;
};

}  // namespace
}  // namespace capstan::l7::tls

int main(int argc, char** argv) {
  using capstan::l7::tls::CpuTimeReporter;
  bool color = ::isatty(STDOUT_FILENO) != 0;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--benchmark_color=false" || arg == "--benchmark_color=no") color = false;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  CpuTimeReporter reporter(color ? CpuTimeReporter::OO_Defaults : CpuTimeReporter::OO_Tabular);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  std::printf(
      "\nTLS 1.3 handshakes, client and server CPU in one thread, SNI among 10,000 hosts for "
      "Capstan;\nplain OpenSSL: one SSL_CTX, one certificate, no SNI callback. Ratio of CPU time "
      "per handshake\n(Capstan/plain; above 1: what SNI selection and TicketKeys cost):\n");
  reporter.printRatio("full, EC P-256", "BM_FullHandshake_Ec", "BM_PlainFullHandshake_Ec");
  reporter.printRatio("full, RSA-2048", "BM_FullHandshake_Rsa", "BM_PlainFullHandshake_Rsa");
  reporter.printRatio("resumed (ticket)", "BM_ResumedHandshake", "BM_PlainResumedHandshake");
  benchmark::Shutdown();
  return 0;
}
