// Evaluation during and after pretraining (eval.*): the frozen target encoder's features of the training
// dataset's split (data.split) fit the linear probe and/or kNN (lib/eval), scored on the dataset's test split;
// at the end, optionally the same probes on the encoder at its initialisation and on raw pixels.
//
// Every evaluation is collective: each rank extracts the features of its share of the samples (rank,
// rank + world, ...), every rank gathers all shares and runs the probes on them. The work is split, no rank
// idles in a collective while another evaluates (so dist.timeout_s is never at stake), and every rank gets the
// same numbers; rank 0 reports them ({write_tag}_eval.csv, the log, the coordinator, /metrics).
//
// A stop asked for during an evaluation (a signal, the coordinator's stop: RunReporter::stop_asked) abandons it
// with EvaluationStopped, so that a stop is not held up by a long evaluation (Slurm's preemption warning gives
// 120 s). A single rank stops within one batch or probe epoch; several ranks agree at the end of each stage
// (extraction of a split, the probes), where they meet anyway, so that a rank that was not signalled stops with
// the others instead of waiting alone in a collective.
//
// Nothing here draws from the global generator or leaves a module's mode changed, so a run with evaluations
// trains exactly as one without.
#pragma once

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/config.h"
#include "data/dataset.h"
#include "eval/evaluate.h"
#include "model/vit.h"
#include "train/csv_log.h"

namespace ijepa::dist {
class Communicator;
}

namespace ijepa::train {

class RunReporter;

// An evaluation abandoned because a stop was asked for; what() says which.
class EvaluationStopped : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Where training stands when an evaluation runs.
struct EvalPosition {
  int64_t epoch = 0;  // of the last step, 1-based as in the CSV
  int64_t step = 0;
  double train_seconds = 0;  // this process's training time so far
};

class RunEvaluator {
 public:
  // `train` is the training dataset (data.split); the test split is opened here. Throws InputError naming the
  // dataset or key when the test split cannot be opened or a subset has fewer samples than there are ranks.
  // Writes nothing: the trainer builds it while the run can still be refused.
  RunEvaluator(const common::Config& config, dist::Communicator& comm, RunReporter& reporter,
               std::shared_ptr<const data::Dataset> train);
  ~RunEvaluator();

  // Rank 0 opens {write_tag}_eval.csv in the run folder, keeping the rows up to resumed_step (-1: a fresh run).
  // Before the first evaluation.
  void open_log(int64_t resumed_step);

  // eval.every_epochs says so after `epochs_done` epochs.
  bool due_after_epoch(int64_t epochs_done) const;

  // Probes `target` (collective; its mode is left as it was). Both evaluations throw EvaluationStopped on every
  // rank when a stop is asked for on any (see the file's header).
  void evaluate_target(model::VisionTransformer& target, const EvalPosition& at);

  // eval.at_end: probes `target` unless it was evaluated at this step already; with eval.baselines also the
  // encoder at its initialisation (meta.seed, the shape of `target`) and raw pixels; rank 0 logs the table.
  void evaluate_at_end(model::VisionTransformer& target, const EvalPosition& at);

  // The rows of the last evaluation (each features probed at its step), for summary.json.
  const std::vector<EvalRow>& last() const { return last_; }

 private:
  // Features of some samples: [N, F] from a dataset of N.
  using Extract = std::function<eval::FeatureSet(std::shared_ptr<const data::Dataset>)>;

  // Throws EvaluationStopped on every rank when a stop was asked for on any (collective with several ranks).
  void stop_if_asked(const std::string& stage);
  eval::FeatureSet gather_features(const std::shared_ptr<const data::Dataset>& dataset, const Extract& extract);
  // Extracts, probes and reports one kind of features: target | random_init | raw_pixels.
  void probe(const std::string& features, const Extract& extract, const EvalPosition& at);

  common::Config config_;
  dist::Communicator& comm_;
  RunReporter& reporter_;
  std::shared_ptr<const data::Dataset> train_, test_;  // the eval.max_* subsets
  eval::EvalOptions options_;
  eval::FeatureOptions feature_options_;
  std::unique_ptr<EvalCsvLog> csv_;  // rank 0, from open_log()
  std::vector<EvalRow> last_;
};

}  // namespace ijepa::train
