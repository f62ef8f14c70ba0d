"""The course model: built once by the chains own stages, shipped in the package, used beside the learners own."""
