import { Backplane } from "@switchboard/core"
import { BackplaneConformance } from "@switchboard/testing"

BackplaneConformance.run("memory", Backplane.layerMemory)
