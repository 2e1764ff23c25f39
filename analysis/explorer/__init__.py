"""The public map: embeddings, UMAP projection, clusters and the pages that serve them."""
