#!/usr/bin/env python3
"""ECR's lifecycle policy, evaluated as the ECR User Guide documents it, on the test world's ECR.

Usage: python3 tests/moto/ecr_lifecycle.py --storage DIR --registry URL --repository NAME
                                          --policy FILE [--now EPOCH]
Prints the digests it expired, one JSON list, on stdout.

In the test world ECR is two halves: moto answers ECR's API (the repository, its lifecycle
policy) and Debian's docker-registry holds the images (jobrun pushes by the registry API, as it
does to ECR). moto never runs a lifecycle policy; ECR does, within 24 hours of a push. This is
that run, for one repository, done when a test asks for it:

* Rules apply in rulePriority order (lowest first); a rule selects images by tagStatus:
  `tagged` with tagPrefixList (every prefix matches one of the image's tags) or tagPatternList
  (every pattern, `*` a wildcard, matches one of them), `untagged` (no tags), `any`.
* countType imageCountMoreThan: of the selected images, newest pushed first, those after the
  first countNumber are identified; sinceImagePushed (countUnit days): those pushed longer ago.
* An image that matches the tagging requirements of a higher-priority rule is never expired by a
  rule of lower priority, though it still counts when a lower rule identifies images ("Rules
  can never mark images that are marked by higher priority rules, but can still identify them
  as if they haven't been expired"). An image is expired by one rule at most.
  (ECR User Guide, "How lifecycle policies work" and "Lifecycle policy properties":
  https://docs.aws.amazon.com/AmazonECR/latest/userguide/LifecyclePolicies.html)

An image is a manifest revision of the repository; its tags are the registry's tag links to it;
its push time (imagePushedAt) is when the registry first stored the manifest's bytes (the blob's
`data` file: a later PUT of the same manifest under another tag stores nothing new, as retagging
on ECR leaves imagePushedAt). Expiring is the registry API's DELETE of the manifest by digest,
which removes its tags too (the registry runs with storage.delete.enabled).
"""

import argparse
import fnmatch
import json
import os
import shutil
import sys
import time
import urllib.request


def images(storage, repository):
    """{digest: {"tags": set, "pushed": epoch}} of a repository in the registry's storage."""
    root = os.path.join(storage, "docker", "registry", "v2")
    manifests = os.path.join(root, "repositories", repository, "_manifests")
    found = {}
    revisions = os.path.join(manifests, "revisions", "sha256")
    for hexdigest in sorted(os.listdir(revisions)) if os.path.isdir(revisions) else []:
        if not os.path.exists(os.path.join(revisions, hexdigest, "link")):
            continue
        data = os.path.join(root, "blobs", "sha256", hexdigest[:2], hexdigest, "data")
        found["sha256:" + hexdigest] = {"tags": set(), "pushed": os.stat(data).st_mtime}
    tags = os.path.join(manifests, "tags")
    for tag in os.listdir(tags) if os.path.isdir(tags) else []:
        link = os.path.join(tags, tag, "current", "link")
        if os.path.exists(link):
            digest = open(link).read().strip()
            if digest in found:
                found[digest]["tags"].add(tag)
    return found


def selects(selection, tags):
    """Whether a rule's tagging requirements match an image with `tags`."""
    status = selection["tagStatus"]
    if status == "any":
        return True
    if status == "untagged":
        return not tags
    prefixes = selection.get("tagPrefixList")
    if prefixes is not None:
        return all(any(t.startswith(p) for t in tags) for p in prefixes)
    patterns = selection.get("tagPatternList", [])
    return all(any(fnmatch.fnmatchcase(t, p) for t in tags) for p in patterns)


def identified(selection, candidates, now):
    """The digests a rule identifies among its selected (digest, image) pairs."""
    newest_first = sorted(candidates, key=lambda c: c[1]["pushed"], reverse=True)
    count = selection["countNumber"]
    if selection["countType"] == "imageCountMoreThan":
        return [d for d, _ in newest_first[count:]]
    if selection["countType"] == "sinceImagePushed":
        assert selection.get("countUnit") == "days", selection
        return [d for d, i in newest_first if now - i["pushed"] > count * 86400]
    raise SystemExit(f"countType {selection['countType']} is not played here")


def evaluate(policy, found, now):
    """The digests the policy expires, oldest rule first."""
    expired, matched_higher = [], set()
    for rule in sorted(policy["rules"], key=lambda r: r["rulePriority"]):
        assert rule["action"]["type"] == "expire", rule
        selection = rule["selection"]
        selected = [(d, i) for d, i in found.items() if selects(selection, i["tags"])]
        for digest in identified(selection, selected, now):
            if digest not in matched_higher and digest not in expired:
                expired.append(digest)
        matched_higher.update(d for d, _ in selected)
    return expired


def batch_delete(storage, registry, repository, image_ids):
    """ECR's BatchDeleteImage on the registry's images: (imageIds deleted, failures).

    An id names a tag (imageTag) or an image (imageDigest). A tag comes off its image, and the
    image goes with its last tag; a digest deletes the image with all its tags; an id matching
    nothing is a per-entry `ImageNotFound` failure, the call itself succeeds. (ECR API
    Reference, BatchDeleteImage: "You can remove a tag from an image by specifying the image's
    tag in your request. When you remove the last tag from an image, the image is deleted from
    your repository." https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_BatchDeleteImage.html)
    """
    tags_dir = os.path.join(storage, "docker", "registry", "v2", "repositories", repository,
                            "_manifests", "tags")
    deleted, failures, gone = [], [], []
    for image_id in image_ids:
        found = images(storage, repository)
        tag, digest = image_id.get("imageTag"), image_id.get("imageDigest")
        if tag is not None:
            owner = next((d for d, i in found.items() if tag in i["tags"]), None)
            if owner is None or (digest is not None and digest != owner):
                failures.append({"imageId": image_id, "failureCode": "ImageNotFound",
                                 "failureReason": "Requested image not found"})
                continue
            shutil.rmtree(os.path.join(tags_dir, tag))
            deleted.append({"imageTag": tag, "imageDigest": owner})
            if found[owner]["tags"] == {tag}:
                gone.append(owner)
        elif digest in found:
            deleted.append({"imageDigest": digest})
            gone.append(digest)
        else:
            failures.append({"imageId": image_id, "failureCode": "ImageNotFound",
                             "failureReason": "Requested image not found"})
    for digest in gone:
        delete_manifest(registry, repository, digest)
    return deleted, failures


def delete_manifest(registry, repository, digest):
    """The registry API's DELETE of a manifest by digest (its tags go with it)."""
    url = f"{registry}/v2/{repository}/manifests/{digest}"
    with urllib.request.urlopen(urllib.request.Request(url, method="DELETE")) as resp:
        assert resp.status == 202, (url, resp.status)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--storage", required=True)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--repository", required=True)
    ap.add_argument("--policy", required=True)
    ap.add_argument("--now", type=float, default=None)
    args = ap.parse_args()
    policy = json.load(open(args.policy))
    found = images(args.storage, args.repository)
    expired = evaluate(policy, found, args.now or time.time())
    for digest in expired:
        delete_manifest(args.registry, args.repository, digest)
    json.dump(expired, sys.stdout)
    print()


if __name__ == "__main__":
    main()
