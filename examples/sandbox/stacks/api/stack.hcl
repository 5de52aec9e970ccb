stack {
  schedule = "0 2 * * *"
  timezone = "Europe/Berlin"
  policy   = "review"
}
