# Every fix goes through a pull request.
policy "review" {
  on_drift   = "pull_request"
  on_pending = "report"
  escalate   = "report"
}
