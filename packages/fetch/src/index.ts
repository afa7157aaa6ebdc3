// Public entry of this package. Filled in by the issue that builds it.
export {};
