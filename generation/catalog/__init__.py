"""The catalog: collections, datasets and examples, the released file formats, import and export."""
