// ijepa-train: I-JEPA pretraining, one process per rank (mpirun / srun start several).
//   ijepa-train --config FILE [--set section.key=value ...] [--validate]
// Exit codes: 0 done; 2 bad config or input; 128+signal (143 for SIGTERM) stopped after a checkpoint;
// 1 any other failure, with one line on stderr saying what and where.
#include <CLI/CLI.hpp>

#include <iostream>

#include "common/config.h"
#include "common/errors.h"
#include "common/logging.h"
#include "common/malloc_tuning.h"
#include "common/omp_wait.h"
#include "common/signals.h"
#include "dist/communicator.h"
#include "train/trainer.h"

namespace {

int train(const ijepa::common::Config& config) {
  ijepa::common::install_stop_handlers();
  auto comm =
      ijepa::dist::make_communicator(config.dist, torch::Device(ijepa::train::resolve_device(config.meta.device)));
  ijepa::common::init_logging(comm->rank());
  // With several ranks an error ends the whole job at once (the abort's log line names this rank): returning would
  // leave this rank in MPI_Finalize while the others wait for it in a collective until dist.timeout_s, or for ever (a
  // launcher that does not abort jobs itself waits on a rank that never finalised).
  try {
    ijepa::train::Trainer trainer(config, *comm);
    return trainer.run().exit_code;
  } catch (const ijepa::common::InputError& e) {
    if (comm->world_size() > 1) comm->abort(e.what(), 2);  // e.g. a dataset missing or a port busy on one node
    throw;
  } catch (const std::exception& e) {
    if (comm->world_size() > 1) comm->abort(e.what(), 1);  // a peer died or is stuck, memory ran out, a file failed
    throw;
  }
}

}  // namespace

int main(int argc, char** argv) {
  ijepa::common::choose_omp_wait_policy(argv);  // see common/omp_wait.h
  ijepa::common::keep_freed_memory();           // see common/malloc_tuning.h
  CLI::App app{"I-JEPA pretraining (one rank)"};
  std::string config_path;
  std::vector<std::string> overrides;
  bool validate_only = false;
  app.add_option("--config", config_path, "YAML config (the reference's sections plus ijepa's)")->required();
  app.add_option("--set", overrides, "override one key: section.key=value (repeatable)");
  app.add_flag("--validate", validate_only, "check the config, print it resolved, and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    const auto config = ijepa::common::load_config(config_path, overrides);
    if (validate_only) {
      std::cout << ijepa::common::to_yaml(config);
      return 0;
    }
    return train(config);
  } catch (const ijepa::common::InputError& e) {
    std::cerr << "ijepa-train: " << e.what() << std::endl;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "ijepa-train: error: " << e.what() << std::endl;
    return 1;
  }
}
