"""Loss, gradient and fits as sums over partitions on Dask."""
