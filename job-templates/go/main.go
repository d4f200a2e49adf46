// One task of the job. jobrun sets JOBRUN_CONFIG (JSON), JOBRUN_INDEX, JOBRUN_COUNT,
// JOBRUN_RUN_ID and JOBRUN_ATTEMPT, and
//   JOBRUN_OUTPUT_DIR  an empty folder for what the task makes, kept after it (on Fargate
//                      uploaded to the job's bucket); result.json there (a JSON object, at most
//                      64 KiB) is the task's result, which `jobrun results` tables
//   JOBRUN_STAGE       "map", or "reduce" for the [reduce] task, which reads every task's
//                      folder at JOBRUN_INPUTS_DIR/<index>/
// Exit 0 for success.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

func main() {
	config := map[string]any{}
	if err := json.Unmarshal([]byte(os.Getenv("JOBRUN_CONFIG")), &config); err != nil {
		fmt.Fprintln(os.Stderr, "bad JOBRUN_CONFIG:", err)
		os.Exit(2)
	}
	fmt.Printf("task %s of %s: config %v\n", os.Getenv("JOBRUN_INDEX"), os.Getenv("JOBRUN_COUNT"), config)
	// ... the heavy work goes here ...
	time.Sleep(time.Second)
	result, _ := json.Marshal(map[string]any{"config": config, "score": 1.0})
	if dir := os.Getenv("JOBRUN_OUTPUT_DIR"); dir != "" {
		if err := os.WriteFile(dir+"/result.json", result, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "cannot write result.json:", err)
			os.Exit(1)
		}
	}
	fmt.Println("done")
}
