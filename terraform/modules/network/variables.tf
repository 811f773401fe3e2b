variable "name" {
  description = "Name prefix for network resources."
  type        = string
}

variable "cluster_name" {
  description = "EKS cluster name, used in the kubernetes.io/cluster/<name> subnet tag."
  type        = string
}

variable "vpc_cidr" {
  description = "IPv4 CIDR block of the VPC (/16 to /20)."
  type        = string

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0))
    error_message = "vpc_cidr must be a valid IPv4 CIDR block."
  }
}

variable "availability_zones" {
  description = "Availability zones to place one public and one private subnet in."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 2
    error_message = "At least two availability zones are required for EKS."
  }
}

variable "public_subnet_cidrs" {
  description = "Public subnet CIDRs, one per AZ; empty derives them from vpc_cidr."
  type        = list(string)
  default     = []
}

variable "private_subnet_cidrs" {
  description = "Private subnet CIDRs, one per AZ; empty derives them from vpc_cidr."
  type        = list(string)
  default     = []
}

variable "single_nat_gateway" {
  description = "Use one NAT gateway for all private subnets instead of one per AZ."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags added to every network resource."
  type        = map(string)
  default     = {}
}
