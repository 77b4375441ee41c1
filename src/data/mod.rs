//! Datasets: CIFAR-10/100, ImageNet folders, the embedded synthetic dataset (spec §1.5, §6).
