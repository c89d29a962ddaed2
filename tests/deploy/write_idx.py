#!/usr/bin/env python3
"""Writes a tiny synthetic IDX image set (Fashion-MNIST's layout) for the deploy tests.

    write_idx.py FOLDER N    FOLDER/train-images-idx3-ubyte (N 28x28 images) and train-labels-idx1-ubyte
"""
import os
import struct
import sys


def main() -> None:
    folder, n = sys.argv[1], int(sys.argv[2])
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "train-images-idx3-ubyte"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28))
        f.write(bytes((i * 7 + p) % 256 for i in range(n) for p in range(28 * 28)))
    with open(os.path.join(folder, "train-labels-idx1-ubyte"), "wb") as f:
        f.write(struct.pack(">II", 0x801, n))
        f.write(bytes(i % 10 for i in range(n)))


if __name__ == "__main__":
    main()
