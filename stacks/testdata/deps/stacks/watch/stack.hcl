stack {
  watch = ["../../policies/*.json", "extra/**"]
}
