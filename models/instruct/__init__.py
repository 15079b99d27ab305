"""Instruction data: subquery paraphrases, image augmentation, and the chain-of-thought data set."""
