# Amazon EBS CSI driver: dynamic EBS volumes for PersistentVolumeClaims
# (cajald's data PVC in k8s/base/pvc.yaml, Katib's MySQL). Since Kubernetes
# 1.23 EKS needs this add-on for EBS volumes. Its controller authenticates with
# IRSA as kube-system/ebs-csi-controller-sa.

data "aws_partition" "current" {}

locals {
  ebs_csi_enabled     = var.enable_ebs_csi_driver && var.enable_irsa
  ebs_csi_sa          = "system:serviceaccount:kube-system:ebs-csi-controller-sa"
  oidc_issuer_host    = replace(coalesce(module.cluster.oidc_issuer_url, "none"), "https://", "")
  ebs_csi_policy_name = "service-role/AmazonEBSCSIDriverPolicy"
}

data "aws_iam_policy_document" "ebs_csi_assume_role" {
  count = local.ebs_csi_enabled ? 1 : 0

  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [module.cluster.oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer_host}:sub"
      values   = [local.ebs_csi_sa]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer_host}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "ebs_csi" {
  count = local.ebs_csi_enabled ? 1 : 0

  name               = "${var.cluster_name}-ebs-csi"
  description        = "IRSA role of the EBS CSI controller of ${var.cluster_name}"
  assume_role_policy = data.aws_iam_policy_document.ebs_csi_assume_role[0].json
}

resource "aws_iam_role_policy_attachment" "ebs_csi" {
  count = local.ebs_csi_enabled ? 1 : 0

  role       = aws_iam_role.ebs_csi[0].name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/${local.ebs_csi_policy_name}"
}

resource "aws_eks_addon" "ebs_csi" {
  count = local.ebs_csi_enabled && var.manage_eks_addons ? 1 : 0

  cluster_name                = module.cluster.cluster_name
  addon_name                  = "aws-ebs-csi-driver"
  service_account_role_arn    = aws_iam_role.ebs_csi[0].arn
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"

  # The add-on's pods need nodes to run on before it reports ACTIVE.
  depends_on = [module.node_groups, aws_iam_role_policy_attachment.ebs_csi]
}
