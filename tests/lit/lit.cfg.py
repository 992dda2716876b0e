# lit configuration for Kiln's FileCheck tests.
import os
import lit.formats

config.name = "kiln"
config.test_format = lit.formats.ShTest(execute_external=True)
config.suffixes = [".kiln", ".kir", ".test"]
config.excludes = ["Inputs"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.kiln_obj_root, "tests", "lit")

config.environment["PATH"] = os.pathsep.join(
    [config.kiln_tools_dir, config.llvm_tools_dir, config.environment.get("PATH", "")])
config.substitutions.append(
    ("%compare", "python3 " + os.path.join(config.test_source_root, "Inputs", "compare_safetensors.py")))
config.substitutions.append(("%models", os.path.join(config.kiln_src_root, "models")))
config.substitutions.append(
    ("%make_idx", "python3 " + os.path.join(config.test_source_root, "Inputs", "make_idx.py")))
# Elements --check-grad compares per tensor in the tests that check every
# model (grad/all-models.test). The float64 reference interpreter runs the
# model twice per element, which under the sanitizers takes most of the
# suite's time; there the check samples fewer elements of each tensor, and
# still checks every tensor of every model.
config.substitutions.append(
    ("%grad_samples",
     "4" if config.kiln_sanitize.upper() in ("ON", "1", "TRUE", "YES", "Y")
     else "24"))
