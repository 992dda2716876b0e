//===- Data.h - Dataset readers: IDX (Fashion-MNIST) and CSV -----*- C++
//-*-===//
//
// Training data comes from outside, so every reader validates its input and
// refuses a malformed file with an error naming it (and, for CSV, the line)
// instead of crashing or trusting a declared size. IDX files may be gzipped;
// gzip is recognised by its magic bytes, not by the file name.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_RUNTIME_DATA_H
#define KILN_RUNTIME_DATA_H

#include "ir/Tensor.h"
#include "llvm/Support/Error.h"
#include <optional>

namespace kiln {

/// Examples with their labels. images: f32 [N, d1, d2, ...] (IDX: [N, rows,
/// cols]; CSV: [N, features]); labels: i32 [N].
struct Dataset {
  Tensor images;
  Tensor labels;
  int64_t size() const { return labels.numel(); }
  /// Elements per example (rows*cols for IDX images).
  int64_t exampleSize() const;
};

/// A training set and, where the source has one, a test set.
struct DataSplits {
  Dataset train;
  std::optional<Dataset> test;
};

/// Fashion-MNIST from a folder holding Debian's train-images-idx3-ubyte.gz,
/// train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and
/// t10k-labels-idx1-ubyte.gz (60000 and 10000 examples of 28x28, labels 0-9).
/// A missing folder or file is an error that names it and, when `dir` is
/// Debian's /usr/share/datasets/fashion-mnist (or empty, which means it),
/// says `apt-get install dataset-fashion-mnist`.
llvm::Expected<DataSplits> loadFashionMnist(llvm::StringRef dir);
/// As above, giving the install hint when `dir` is `installedDir`; the
/// one-argument form passes Debian's folder. Lets tests check the wording.
llvm::Expected<DataSplits> loadFashionMnist(llvm::StringRef dir,
                                            llvm::StringRef installedDir);

/// An IDX image file (unsigned bytes, magic 0x00000803, or any rank >= 2 of
/// type 0x08) and an IDX label file (magic 0x00000801), gzipped or not.
/// Pixels are scaled to [0, 1] (divided by 255).
llvm::Expected<Dataset> readIdx(llvm::StringRef imagesPath,
                                llvm::StringRef labelsPath);

/// The same from the files' bytes (each gzipped or not); the paths only
/// name them in errors.
llvm::Expected<Dataset> parseIdx(llvm::StringRef imageBytes,
                                 llvm::StringRef imagesPath,
                                 llvm::StringRef labelBytes,
                                 llvm::StringRef labelsPath);

/// A CSV file with a header row; `labelColumn` names the column of integer
/// class labels (>= 0), every other column is a float feature.
llvm::Expected<Dataset> readCsv(llvm::StringRef path,
                                llvm::StringRef labelColumn);
/// The same from a file's bytes; `path` only names it in errors.
llvm::Expected<Dataset> parseCsv(llvm::StringRef bytes, llvm::StringRef path,
                                 llvm::StringRef labelColumn);

} // namespace kiln

#endif
