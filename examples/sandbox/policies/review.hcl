# Merged code is applied; drift goes through a pull request, because someone
# may have changed the console on purpose.
policy "review" {
  on_drift   = "pull_request"
  on_pending = "apply"
  allow      = ["create", "update"]
  escalate   = "report"
}
