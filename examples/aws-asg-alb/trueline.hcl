# trueline serve --config trueline.hcl     (check it first: trueline doctor --config trueline.hcl)
listen       = "0.0.0.0:8080"
external_url = "https://trueline.internal.example"
data_dir     = "/var/lib/trueline"
lock_timeout = "5m" # a nightly plan that meets a CI apply's lock waits this long

# What terraform inherits of trueline's environment beyond the system's:
# the AWS credentials of the instance, task or pod trueline runs as. The
# state backend then assumes its role (stacks/web/main.tf, assume_role), and
# trueline writes its records beside the state with that same identity.
pass_env = ["AWS_*"]

binary {
  name    = "tofu"
  version = "~> 1.10"
}

limits {
  global         = 4
  per_repository = 4
}

repository "infra" {
  url    = "https://github.com/acme/infra.git"
  branch = "main"
  forge  = "github"

  # A GitHub App rather than a person's token: installation tokens are
  # short-lived and scoped to the repositories the app is installed on.
  # The app needs contents, pull requests and commit statuses read/write.
  github_app {
    app_id          = 123456
    installation_id = 7890123
    private_key_env = "GITHUB_APP_PRIVATE_KEY" # or private_key_file = "/run/secrets/github-app.pem"
  }
  webhook_secret_env = "GITHUB_WEBHOOK_SECRET" # or webhook_secret_file
}

notify "slack" "infra" {
  webhook_url_env = "SLACK_WEBHOOK_URL" # or webhook_url_file
}

report {
  schedule = "0 7 * * 1-5"
  timezone = "Europe/Berlin"
  notify   = ["slack.infra"]
}

retention {
  max_age            = "90d"
  runs_per_workspace = 500
}
