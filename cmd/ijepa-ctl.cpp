// ijepa-ctl: lists, shows, watches and stops runs on a coordinator. Tables by default; --json prints JSON on
// stdout for scripts, with anything human on stderr.
#include <CLI/CLI.hpp>
#include <iostream>

#include "common/checks.h"
#include "common/errors.h"
#include "coord/ctl.h"

int main(int argc, char** argv) {
  ijepa::coord::CtlOptions o;
  o.channel.address = "127.0.0.1:50051";
  double timeout_s = 10.0;
  std::string run;
  std::string reason = "requested with ijepa-ctl";
  bool active_only = false;
  int limit = 100;

  CLI::App app{"ijepa-ctl: inspect and control runs on an ijepa-coordinator"};
  app.fallthrough();
  app.require_subcommand(1);
  app.add_option("--coordinator", o.channel.address, "coordinator host:port")->capture_default_str();
  app.add_option("--token", o.channel.token, "bearer token (or $IJEPA_COORDINATOR_TOKEN)")
      ->envname("IJEPA_COORDINATOR_TOKEN");
  app.add_option("--tls-ca", o.channel.tls_ca, "CA (PEM) of the coordinator's certificate; enables TLS");
  app.add_option("--tls-cert", o.channel.tls_cert, "client certificate (PEM) for mutual TLS");
  app.add_option("--tls-key", o.channel.tls_key, "client private key (PEM) for mutual TLS");
  app.add_flag("--json", o.json, "print JSON on stdout");
  app.add_option("--timeout", timeout_s, "seconds to wait for each call (watch: for each answer)")
      ->capture_default_str();
  auto* runs = app.add_subcommand("runs", "list runs, newest first");
  runs->add_flag("--active", active_only, "only running, stalled or stopping runs");
  runs->add_option("--limit", limit, "the newest N runs")->check(CLI::Range(1, 10000))->capture_default_str();
  auto* show = app.add_subcommand("show", "show one run with its workers and latest events");
  show->add_option("RUN", run, "run name")->required();
  auto* watch = app.add_subcommand("watch", "follow a run until it ends");
  watch->add_option("RUN", run, "run name")->required();
  auto* stop = app.add_subcommand("stop", "ask a run's workers to checkpoint and exit");
  stop->add_option("RUN", run, "run name")->required();
  stop->add_option("--reason", reason, "recorded with the request")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  try {
    // Written so that NaN fails too (CLI11's range check lets it through).
    if (!(timeout_s >= 0.001 && timeout_s <= 86400.0)) {
      throw ijepa::common::InputError("--timeout must be 0.001..86400 seconds");
    }
    o.timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
    ijepa::common::check_token(o.channel.token, "--token");  // here, so that the error names the flag
    if (runs->parsed()) return ijepa::coord::ctl_runs(o, active_only, limit, std::cout, std::cerr);
    if (show->parsed()) return ijepa::coord::ctl_show(o, run, std::cout, std::cerr);
    if (watch->parsed()) return ijepa::coord::ctl_watch(o, run, std::cout, std::cerr);
    return ijepa::coord::ctl_stop(o, run, reason, std::cout, std::cerr);
  } catch (const ijepa::common::InputError& e) {
    std::cerr << "ijepa-ctl: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "ijepa-ctl: " << e.what() << "\n";
    return 1;
  }
}
