"""One module per figure; each exposes `run(data: Dataset) -> list[Figure]`, in the order of __main__."""
