terraform {
  # 1.9+ is needed for variable validations that refer to other variables.
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.60.0, < 6.0.0"
    }
  }

  # State is local by default. For a shared, locked remote state copy
  # backend.tf.example to backend.tf and fill in the bucket (see README.md).
}
