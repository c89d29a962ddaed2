// State dicts and torch.save files: the bridge to the reference's checkpoints. Keys are the reference's
// state-dict names; its checkpoints prefix them with "module." (DistributedDataParallel), which loading accepts
// with or without.
#pragma once

#include <ATen/core/Dict.h>
#include <ATen/core/ivalue.h>
#include <torch/torch.h>

#include <map>
#include <string>

namespace ijepa::model {

using GenericDict = c10::impl::GenericDict;

// A torch.save (zip) file as a dictionary, its tensors on the CPU wherever they were saved (the reference saves
// from "cuda:0"). Throws InputError naming the file when it is missing, truncated or
// not a torch.save dictionary.
GenericDict read_torch_file(const std::string& path);

// torch.save-compatible bytes of a value (loadable by Python's torch.load), written atomically.
void write_torch_file(const std::string& path, const c10::IValue& value);

// name -> tensor (the module's own tensors, not copies), with `prefix` before every name.
GenericDict state_dict(torch::nn::Module& module, const std::string& prefix = "module.");

// The dict's tensors by name, "module." stripped. InputError naming `what` when an entry is not name -> tensor.
std::map<std::string, torch::Tensor> tensors_by_name(const GenericDict& dict, const std::string& what);

// Copies a state dict into the module. Every parameter must be present with its shape, and nothing else
// may be; otherwise InputError naming `what` (e.g. "checkpoint x.pth.tar, encoder") and the keys.
void load_state_dict(torch::nn::Module& module, const GenericDict& dict, const std::string& what);

// SHA-256 of the raw parameter bytes in state-dict order (summary.json's encoder_sha256).
std::string parameters_sha256(const torch::nn::Module& module);

}  // namespace ijepa::model
