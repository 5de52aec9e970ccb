# Console changes to sizes and timeouts are reverted automatically during
# office hours; anything that replaces or deletes goes to a pull request.
policy "guarded" {
  on_drift    = "apply"
  on_pending  = "pull_request"
  allow       = ["update"]
  max_changes = 3
  protect     = ["aws_lb.*", "aws_autoscaling_group.*"]
  escalate    = "pull_request"

  apply_window {
    cron     = "0 9-17 * * 1-5"
    duration = "1h"
    timezone = "Europe/Berlin"
  }

  notify = ["slack.infra"]
}
